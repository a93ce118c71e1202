import torch

from dopsd.distill import most_confident


def test_chooses_the_most_confident_masked_positions_per_row():
    # two rows, block of 4, vocabulary of 3; max-probabilities differ per position
    logits = torch.log(torch.tensor([
        [[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.7, 0.2, 0.1], [0.5, 0.25, 0.25]],
        [[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.7, 0.2, 0.1], [0.5, 0.25, 0.25]],
    ]))
    masked = torch.tensor([[True, True, True, True], [False, True, True, True]])
    counts = torch.tensor([2, 1])
    chosen, valid = most_confident(logits, masked, counts)
    assert chosen[0].tolist() == [0, 2]  # 0.9 and 0.7
    assert chosen[1, 0].item() == 2  # position 0 is already revealed: 0.7 is the best masked one
    assert valid.tolist() == [[True, True], [True, False]]


def test_selection_by_teacher_and_by_student_differ_when_their_confidences_do():
    masked = torch.ones(1, 3, dtype=torch.bool)
    teacher = torch.tensor([[[5.0, 0.0], [0.0, 0.0], [1.0, 0.0]]])
    student = torch.tensor([[[0.0, 0.0], [4.0, 0.0], [1.0, 0.0]]])
    counts = torch.tensor([1])
    assert most_confident(teacher, masked, counts)[0].item() == 0
    assert most_confident(student, masked, counts)[0].item() == 1
