"""Clinical reading: pages of text -> mentions -> a dossier's entries (history, allergies, treatments).
Sections, lexicons, qualifiers (negation, hypothesis, family via EDS-NLP), mentions, consolidation."""
