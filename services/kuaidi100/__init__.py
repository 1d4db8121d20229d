"""The Kuaidi100 (快递100) tracking client alone: subscribe, real-time query, push parsing and signing.

Like services/ozon it imports nothing else of ours (an import-linter contract says so).
"""
