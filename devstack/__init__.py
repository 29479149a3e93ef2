"""Local development stack: Azurite, the Cosmos DB emulator launcher and a local Functions host."""
