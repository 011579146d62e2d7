"""The Azure library behind the azure target: sessions and clients (`session`), ARM deployments with
progress (`deployment`), the Azure Files share as a sync remote (`files`), one container app with its
revisions, replicas, secrets and log stream (`app.ContainerApp`), and the form's pickers (`choices`).
The Azure SDKs are imported only when a call needs them."""
