"""The trading policy, free of Nautilus: what to hold and what to send, bar by bar.

filters (:mod:`.filters`) -> target (:mod:`.sizing`, :mod:`.edge`) -> risk rules (:mod:`.risk`)
-> order size (:mod:`.sizing`), with costs (:mod:`.costs`) and one set of defaults
(:mod:`.settings`). :class:`.decision.Policy` holds the rules' memory; the Nautilus strategy
and the evaluation's simulator both call it, so a rule changed here changes both.
"""
