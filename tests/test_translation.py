from segment_braze import BrazeRequest, Translation, UserOperation


def delete(user):
    """A /users/delete operation for ``user``."""
    return UserOperation(path="/users/delete", key="external_ids", entry=user)


def identify(user):
    """A /users/identify operation for ``user``."""
    return UserOperation(path="/users/identify", key="aliases_to_identify", entry={"id": user})


class TestRequests:
    """Translation.requests() groups user operations by endpoint and list key."""

    def test_one_operation(self):
        """A single operation becomes one request whose list holds its entry."""
        assert Translation(operations=(delete("u1"),)).requests() == [
            BrazeRequest(path="/users/delete", body={"external_ids": ["u1"]})
        ]

    def test_several_operations_grouped(self):
        """Operations of the same path and key share one request, in first-seen order."""
        t = Translation(operations=(delete("u1"), identify("u2"), delete("u3")))
        assert [(r.path, r.body) for r in t.requests()] == [
            ("/users/delete", {"external_ids": ["u1", "u3"]}),
            ("/users/identify", {"aliases_to_identify": [{"id": "u2"}]}),
        ]
