import pytest

from jobs.errors import InvalidTransition
from jobs.models import FINAL, TRANSITIONS, Job, JobEvent
from jobs.services import EVENTS, STAMPS, job_transition
from tests.factories import order

pytestmark = pytest.mark.django_db

ALLOWED = [(source, target) for source, targets in TRANSITIONS.items() for target in targets]
REFUSED = [
    (source, target)
    for source in Job.Status.values
    for target in Job.Status.values
    if target != source and target not in TRANSITIONS[source]
]


def job_in(status: str) -> Job:
    job = order()
    Job.objects.filter(pk=job.pk).update(status=status)
    job.refresh_from_db()
    return job


@pytest.mark.parametrize(("source", "target"), ALLOWED, ids=[f"{s}->{t}" for s, t in ALLOWED])
def test_allowed_transition_moves_stamps_and_records_an_event(source, target):
    job = job_in(source)
    job_transition(job=job, to=target, message="because")
    job.refresh_from_db()
    assert job.status == target
    if target in STAMPS:  # pending (a replayed pay-after-delivery job) stamps nothing new
        assert getattr(job, STAMPS[target]) is not None
    event = job.events.latest("id")
    assert (event.kind, event.status, event.message) == (EVENTS[target], target, "because")


@pytest.mark.parametrize(("source", "target"), REFUSED, ids=[f"{s}->{t}" for s, t in REFUSED])
def test_transition_outside_the_table_is_refused(source, target):
    job = job_in(source)
    events = job.events.count()
    with pytest.raises(InvalidTransition):
        job_transition(job=job, to=target)
    job.refresh_from_db()
    assert job.status == source
    assert job.events.count() == events


def test_transition_to_the_same_status_does_nothing():
    job = job_in(Job.Status.PAID)
    events = job.events.count()
    job_transition(job=job, to=Job.Status.PAID)
    assert job.events.count() == events


def test_transition_from_a_stale_status_is_refused():
    job = order()
    stale = Job.objects.get(pk=job.pk)
    job_transition(job=job, to=Job.Status.PAID)
    with pytest.raises(InvalidTransition):
        job_transition(job=stale, to=Job.Status.EXPIRED)
    assert Job.objects.get(pk=job.pk).status == Job.Status.PAID


def test_final_statuses_lead_nowhere():
    assert all(not TRANSITIONS[status] for status in FINAL)


def test_a_new_order_asks_for_payment():
    job = order()
    assert job.status == Job.Status.PENDING
    assert list(job.events.values_list("kind", flat=True)) == [JobEvent.Kind.PAYMENT_REQUIRED]
