"""One module per packet family (Mosquitto's handle_*.c): plain functions taking the Channel."""
