"""python -m vdeliver: the same as the vdeliver command."""
import sys

from vdeliver.cli import main

sys.exit(main())
