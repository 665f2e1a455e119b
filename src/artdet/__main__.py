import sys

from artdet.cli import main

sys.exit(main())
