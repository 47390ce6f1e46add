"""Retrieval: tier routing and filtered Faiss search."""
