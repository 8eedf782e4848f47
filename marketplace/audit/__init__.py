"""`gridbid verify`'s audit: the published book and the chain's events, checked against each other.

events.py rebuilds facts from decoded events (balances over time, deals, mint allowances);
book.py is the published book's format; auctions.py and energy.py are the checks; code.py
recognises gridbid's deployed contracts; chain.py reads a node; report.py runs it all. Nothing
here trusts the portal for what the chain can answer.
"""
