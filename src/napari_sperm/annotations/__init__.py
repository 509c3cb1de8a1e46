"""Qt-free annotations: cells of a frame, COCO export and import that round-trip exactly."""
