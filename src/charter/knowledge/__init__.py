"""Knowledge: a team's documents, indexed for retrieval with citations."""
