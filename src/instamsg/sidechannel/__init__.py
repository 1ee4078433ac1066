"""The device HTTP side channel (spec §10.3, §10.4) and the front door of the HTTP port.

Devices upload and download files with hand-made HTTP that ASGI servers refuse or answer in the wrong
header capitalisation (Q18), so the HTTP port is served by `front_door.FrontDoor`: it answers the
side-channel requests itself, byte for byte, and hands every other connection to uvicorn unchanged.
"""
