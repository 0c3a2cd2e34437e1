"""``python -m conformance.usermodel MODEL ...``: the compare command on its own."""

from conformance.usermodel.command import compare_command

if __name__ == "__main__":
    compare_command(prog_name="conformance compare")
