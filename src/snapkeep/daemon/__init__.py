"""snapkeep.daemon: what ``snapkeep serve`` runs beside the API (DESIGN.md section 6).

Glossary
--------
service      ``service.Service``: recovery on start, the scheduler thread, two worker pools, the monitor
scheduler    queues a job's run when one of its schedules comes due (``scheduler.Scheduler``)
cursor       a job's ``next_run``: every schedule slot before it has been handled
catch-up     the first pass after a start: a schedule missed while the service was down runs once
pool         ``workers.WorkerPool``: claims queue groups of some types and runs a bounded number at once
claim        the conditional UPDATE that moves a group from Pending to Processing; one claimer wins
stop event   the ``threading.Event`` a run checks; set on shutdown or when ``stopQueueGroup`` asks

The daemon and the API are siblings: neither imports the other. They meet in the catalog
(``jobs.queue``): the API queues groups and marks them "stop requested"; the daemon claims, runs and
stops them.
"""
