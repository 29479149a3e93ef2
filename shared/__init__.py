"""ucp domain: everything the functions, the CLI and the training jobs share. Never imports azure.functions."""
