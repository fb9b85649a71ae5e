"""``python -m hub.build [--force]``: write target/manifest.json when it is stale."""

from hub.build.manifest import main

raise SystemExit(main())
