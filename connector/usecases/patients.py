"""Use case: the channels a patient asked not to be reached on (a CRM's unsubscribe flag, a «СТОП» reply)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.store.models import PatientChannel
from connector.store.views import patient_by_phone
from connector.tenants import CHANNELS


class UnknownPatientError(LookupError):
    """No patient of this tenant has that phone number."""


def set_opt_outs(session: Session, *, tenant_id: str, phone: str, channels: Collection[str],
                 now: datetime) -> None:
    """Make `channels` exactly the opt-outs of the tenant's patient with this E.164 `phone`.

    The caller owns the transaction. The cascade reads these flags before every step.
    """
    patient = patient_by_phone(session, tenant_id=tenant_id, phone=phone)
    if patient is None:
        raise UnknownPatientError(phone)
    set_patient_opt_outs(session, patient_id=patient.id, channels=channels, now=now)


def set_patient_opt_outs(session: Session, *, patient_id: int, channels: Collection[str], now: datetime) -> None:
    """Make `channels` exactly the opt-outs of this patient (the caller owns the transaction)."""
    rows = {row.channel: row for row in session.scalars(
        select(PatientChannel).where(PatientChannel.patient_id == patient_id))}
    for channel in CHANNELS:
        row = rows.get(channel)
        if row is None and channel not in channels:
            continue  # no row means "never opted out": only a channel being opted out needs a new one
        if row is None:
            row = PatientChannel(patient_id=patient_id, channel=channel)
            session.add(row)
        row.opted_out = channel in channels
        row.updated_at = now
