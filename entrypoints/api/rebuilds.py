"""The resource API's read-model rebuilds: start one (it runs in the background), watch its progress."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from entrypoints.background import run_rebuild_in_background
from entrypoints.drf.idempotency import idempotent
from entrypoints.drf.permissions import REBUILD_READ_MODEL, requires
from entrypoints.drf.schema import ERROR_RESPONSES, ErrorSerializer
from projections import selectors
from projections.models import RebuildStatus
from projections.rebuild import RebuildAlreadyRunning, RebuildNotStarted, rebuild_job_start


class RebuildInProgress(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "rebuild_in_progress"
    default_detail = "A rebuild of the read model is already running; try again when it has finished."


class RebuildWorkerUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "service_unavailable"
    default_detail = "The worker that runs rebuilds cannot be reached; nothing was started. Retry shortly."


class RebuildJobSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=RebuildStatus.values)
    events_done = serializers.IntegerField(help_text="Events replayed so far, catch-up included.")
    events_total = serializers.IntegerField(help_text="Events in the store (it may grow while the rebuild runs).")
    accounts = serializers.IntegerField(
        allow_null=True, help_text="Accounts in the rebuilt read model, once it succeeded."
    )
    requested_by = serializers.CharField()
    started_at = serializers.DateTimeField()
    heartbeat_at = serializers.DateTimeField(
        help_text="Its last sign of progress; one silent for 2 minutes was abandoned (the next start marks it failed)."
    )
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(help_text="Why it failed; empty otherwise.")


def _job_url(request, job) -> str:
    return reverse("rebuild-detail", kwargs={"rebuild_id": str(job.id)}, request=request)


class RebuildStartApi(APIView):
    permission_classes = requires(REBUILD_READ_MODEL)

    @extend_schema(
        tags=["read model"],
        operation_id="rebuilds_create",
        request=None,
        responses={
            202: RebuildJobSerializer,
            **ERROR_RESPONSES,
            409: OpenApiResponse(
                ErrorSerializer, "A rebuild is already running (rebuild_in_progress), or Idempotency-Key"
            ),
            503: OpenApiResponse(
                ErrorSerializer, "The worker's broker cannot be reached (service_unavailable); nothing started"
            ),
        },
    )
    @idempotent
    def post(self, request):
        """Start rebuilding the read model from the event store, beside the live one; watch it at `Location`."""
        try:
            job = rebuild_job_start(requested_by=request.user.get_username())
        except RebuildAlreadyRunning as running:
            raise RebuildInProgress(f"{running} Its progress: {_job_url(request, running.job)}") from None
        try:
            run_rebuild_in_background(job.id)
        except RebuildNotStarted as exc:
            raise RebuildWorkerUnavailable(
                f"The worker that runs rebuilds cannot be reached ({exc}); nothing was started. Retry shortly."
            ) from None
        return Response(
            RebuildJobSerializer(job).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": _job_url(request, job)},
        )


class RebuildDetailApi(APIView):
    permission_classes = requires(REBUILD_READ_MODEL)

    @extend_schema(tags=["read model"], responses={200: RebuildJobSerializer, **ERROR_RESPONSES})
    def get(self, request, rebuild_id: str):
        """A rebuild's progress, and how it ended."""
        job = selectors.rebuild_job_get(rebuild_id=rebuild_id)
        if job is None:
            raise NotFound(f"No rebuild with id {rebuild_id}")
        return Response(RebuildJobSerializer(job).data)
