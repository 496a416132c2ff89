import sys

from sclseg.cli import main

sys.exit(main())
