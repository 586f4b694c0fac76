"""python -m vdeliver: the same as the vdeliver command (in UTF-8 mode, as it runs)."""
import sys

from vdeliver.cli import ensure_utf8_mode, main

ensure_utf8_mode()
sys.exit(main())
