"""Transport: the HTTP code every adapter shares (channels and sources), errors translated once."""
