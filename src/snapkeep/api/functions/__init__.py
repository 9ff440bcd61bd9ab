"""snapkeep.api.functions: one module per API object, each exporting ``FUNCTIONS``.

base          FunctionSpec/ParamSpec, the call context, list parameters, output conventions
jobs          Backup Jobs          destinations  Destinations and their types
schedules     Schedules            hooks         Hooks
filters       Account Filters      queue         queue groups
alerts        Alerts
"""
