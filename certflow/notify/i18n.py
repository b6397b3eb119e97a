"""Re-exported from :mod:`certflow.i18n` (shared with the pages and the renderer)."""

from certflow.i18n import Direction, lang_of, text_direction

__all__ = ["Direction", "lang_of", "text_direction"]
