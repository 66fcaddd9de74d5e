"""Ports: fail early, naming the option, when one is taken; 0 picks a free one."""

import errno
import socket

from edgefleet.cli.demo.options import DemoError


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As the servers do (asyncio sets it too): a port in TIME_WAIT is free, a listening one is not.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def _taken(what: str, host: str, port: int, option: str, err: OSError) -> DemoError:
    reason = "is in use" if err.errno == errno.EADDRINUSE else f"cannot be used ({err.strerror})"
    return DemoError(
        f"the {what} port {host}:{port} {reason}; choose another with {option} PORT "
        f"(or {option} 0 for any free port)"
    )


def bind_http(host: str, port: int) -> socket.socket:
    """A bound socket for uvicorn: holding it from now on means no one can take the port meanwhile."""
    sock = _socket()
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise _taken("HTTP", host, port, "--port", err) from err
    return sock


def check_mqtt_port(host: str, port: int) -> int:
    """The broker binds the port itself, so check it (or find a free one for 0) and let go."""
    with _socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            raise _taken("MQTT", host, port, "--mqtt-port", err) from err
        bound: int = sock.getsockname()[1]
        return bound
