"""Uploads: streamed multipart intake, content sniffing, safe names, the upload worker."""
