"""The guest's copy: share pages, the QR on the print, galleries, late results, and the durable work under them."""
