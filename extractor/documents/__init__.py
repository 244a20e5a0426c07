"""Reading documents: a dossier's files -> typed documents with pages of text, character offsets and boxes.
Ingest and triage, text layers (pdfium, pdfplumber), OCR (tesseract), boilerplate layout, document type and date."""
