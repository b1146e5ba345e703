"""`pose-classifier` command line: train, evaluate, replay, play, make-sample-bag."""
import sys


def main(argv=None) -> int:
    print("pose-classifier: not implemented yet", file=sys.stderr)
    return 2
