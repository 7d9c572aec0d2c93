"""LIST and WATCH over HTTP: selectors, pagination, Tables and the chunked watch stream."""
