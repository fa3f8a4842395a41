"""Content-addressed storage for task specs, models and updates: an embedded on-disk store
(:mod:`.embedded`) or an IPFS daemon (:mod:`.ipfs`), both naming every file by the CIDv1 IPFS gives it
(:mod:`.unixfs`). Open one with :func:`.base.open_store`; read what peers announced with
:func:`.base.fetch_verified`, never with a bare ``get``. Nothing is imported here, so the consensus core can
compute CIDs without the IPFS client installed."""
