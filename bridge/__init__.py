"""rtvbp-bridge: RTVBP application role over WebSocket, bridged onto RabbitMQ."""

__version__ = "0.1.0"
