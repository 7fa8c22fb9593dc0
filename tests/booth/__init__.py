"""The booth's request: multipart, admission, duplicates, links, the spine's answers (src/boothgate/booth/)."""
