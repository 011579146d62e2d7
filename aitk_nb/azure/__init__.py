"""The shared Azure library behind the azure target: sessions and clients (`session`), ARM
deployments with progress (`deployment`), the Azure Files share as a sync remote (`files`) and the
container app's revisions, replicas and log stream (`app`). Imported only when a verb needs Azure."""
