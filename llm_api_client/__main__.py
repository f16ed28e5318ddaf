import sys

from llm_api_client.cli.main import main

sys.exit(main())
