"""What the server answers besides objects: discovery, OpenAPI, Tables, Go-formatted text, protobuf bodies."""
