"""What the Airflow tasks and triggers pass each other is read back typed, and a document of
another release or of wrong types is refused naming where it came from and the field."""

import pytest

from retail_scoring.run.contract import CONTRACT_VERSION, VERSION_FIELD, ContractError
from scoring_airflow.compute import TaskStatus
from scoring_airflow.task_documents import JobEnded, ScoreResult

STATUS = TaskStatus("partition_000", "succeeded", 0, 1, "", 10.0, 11.0, 15.5)


def test_a_score_result_reads_back_with_its_statuses_typed():
    result = ScoreResult(["partition_000"], ["partition_001"], [STATUS])
    read = ScoreResult.from_dict(result.to_dict(), "the score task's result")
    assert read == result and isinstance(read.statuses[0], TaskStatus)


def test_a_result_of_another_release_is_refused_naming_it():
    older = {**ScoreResult([], [], []).to_dict(), VERSION_FIELD: CONTRACT_VERSION - 1}
    with pytest.raises(ContractError, match=f"the score task's result: run contract version {CONTRACT_VERSION - 1}"):
        ScoreResult.from_dict(older, "the score task's result")


def test_an_event_of_wrong_types_is_refused_naming_the_field():
    event = JobEnded("job-1", [STATUS]).to_dict()
    event["statuses"][0]["state"] = 5
    with pytest.raises(ContractError, match=r"the trigger's event: field statuses is \[\{'task_id': 'partition_000'"):
        JobEnded.from_dict(event, "the trigger's event")
    with pytest.raises(ContractError, match="missing job_id"):
        JobEnded.from_dict({VERSION_FIELD: CONTRACT_VERSION, "statuses": []}, "the trigger's event")
