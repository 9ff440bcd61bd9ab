"""snapkeep.api.functions: one module per API object, each exporting ``FUNCTIONS``.

base          FunctionSpec/ParamSpec, the call context, list parameters, ``ObjectKind`` (get, list,
              delete and manage of a catalog object, with its ``ManageRules``)
jobs          Backup Jobs          destinations  Destinations and their types
schedules     Schedules            hooks         Hooks
filters       Account Filters      queue         queue groups and items
alerts        Alerts               logs          run logs and their items
backups       backups and locks    restore       addQueueItems (restores, downloads)
accounts      hosting accounts     settings      performance, general, notification settings
reindex       reindexDestination (a destination's backups back into the catalog)
nodes         the serve processes sharing the catalog (listNodes, getNode, deleteNode)
"""
