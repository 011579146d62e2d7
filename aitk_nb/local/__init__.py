"""The local library behind the local target, as `aitk_nb.azure` is behind the azure one: the app
record read from the template (`record`), the replica process supervised through /proc (`process`)
and its log file (`logs`)."""
