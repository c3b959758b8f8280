"""Print the first TCP port from the one given up that nothing on this machine listens on: the
main job's Airflow takes it when another Airflow already has the usual one."""

import socket
import sys


def free_port(preferred: int, tries: int = 200) -> int:
    for port in range(preferred, preferred + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"no free port in {preferred}..{preferred + tries - 1}")


if __name__ == "__main__":
    print(free_port(int(sys.argv[1])))
