"""Tasks on a container engine: the :class:`~.protocol.ContainerEngine` seam, its docker-py adapter
(:mod:`.engine`), the pure request builders (:mod:`.requests`) and inspect readers
(:mod:`.observed`), the replace sequence (:mod:`.replace`) and the task interpreter (:mod:`.interpreter`).
"""
