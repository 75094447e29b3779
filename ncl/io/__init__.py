"""Low-level input and output shared by every package above: image decoding, crop boxes and
quarter turns, file checks, image names and their classes, progress bars and the process pool.
Imports nothing else of ncl."""
