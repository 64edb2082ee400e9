"""Where files live: URIs and storage (``storage``), the names of every run and catalog file
(``layout``), and resumable output units (``resume``)."""
