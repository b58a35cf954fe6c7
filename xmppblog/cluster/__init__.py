# SPDX-License-Identifier: AGPL-3.0-or-later
"""Many workers serving one component domain: membership, shard leases, shared presence."""
