"""The chaos suite: the real stack in separate processes, one fault per test, nothing lost (issue 17)."""
