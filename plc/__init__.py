"""PLC interfaces besides REST: a Modbus TCP server (:mod:`plc.modbus`) and an OPC UA server
(:mod:`plc.opcua`), both showing the one fail-safe status of :func:`core.plc.plc_status`
read from Redis by :mod:`plc.state` (docs/PLC.md for the PLC programmer)."""
