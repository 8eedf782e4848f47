"""`gridbid simulate`: a day of automatic trading through the real stack, then its books.

plan (who takes part) → driver (the portal's runtime, the day, its end) with agents, day,
journal, settle and books → reconcile (the sources side by side) → report (plots, summary).
"""
