"""The web dashboard: NiceGUI pages mounted on the server's FastAPI app."""
