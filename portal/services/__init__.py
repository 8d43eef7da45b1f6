"""The service layer: every state change that carries a business rule lives here.

Each public function runs inside one transaction, enforces its invariant in the
database (conditional UPDATE or row lock) and records its AuditEvent in the same
transaction. Views and patient pages call these; they never set a status or a
quantity themselves.
"""

from portal.services import patients  # noqa: F401  (registers the MRN hook)
