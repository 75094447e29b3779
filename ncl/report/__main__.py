"""python -m ncl.report DIR: the report of a run or sweep directory (report.md/.csv/.png)."""

import argparse
import sys

from ncl.report.sweep import write_report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ncl.report", description=__doc__)
    parser.add_argument("dir", help="a run or multirun directory holding results.json files")
    args = parser.parse_args()
    try:
        path = write_report(args.dir)
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    print(path.read_text())


if __name__ == "__main__":
    main()
