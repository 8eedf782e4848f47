"""`gridbid verify`'s audit: the published book and the chain's events, checked against each other.

events.py holds what the chain's logs say (decoded events, replayed into balances, deals and
mint allowances); book.py the portal's published book; checks.py compares them; chain.py reads
a node. Nothing here trusts the portal for what the chain can answer.
"""
