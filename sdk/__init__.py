"""The workstack runtime: what runs inside workload images. Never imports Pulumi."""

__all__: list[str] = []
