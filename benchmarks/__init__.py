"""InstaMsg benchmark harness: a raw-asyncio MQTT load generator and broker-vs-broker runner."""
