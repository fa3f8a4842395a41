"""A short federated run end to end: four IID clients train the CNN on digits and FedAvg combines them, with
every update and model passing through the on-network file format."""

import numpy as np
from cotrain.learning.aggregation import apply_delta, fedavg
from cotrain.learning.data import split_train_test
from cotrain.learning.evaluation import evaluate
from cotrain.learning.models import build_model
from cotrain.learning.partition import partition_iid
from cotrain.learning.state import layout, model_state
from cotrain.learning.tensor_files import decode_tensors, encode_model, encode_update
from cotrain.learning.training import train_local

CLIENTS = 4
ROUNDS = 5
MAX_BYTES = 1 << 20


def test_four_iid_clients_reach_90_percent_on_digits_in_five_rounds(digits):
    # Prepare
    train, test = split_train_test(digits, test_fraction=0.25, seed=0)
    clients = [train.subset(indices) for indices in partition_iid(len(train), CLIENTS, 0)]
    model = build_model("cnn", {"channels": [16, 32]}, input_shape=(1, 8, 8), num_classes=10, seed=0)
    global_state = model_state(model)
    expected = layout(global_state)
    accuracies = []

    # Execute
    for round_ in range(ROUNDS):
        deltas, weights = [], []
        for client, data in enumerate(clients):
            result = train_local(
                model,
                global_state,
                data,
                epochs=3,
                batch_size=32,
                lr=0.005,
                optimizer="adam",
                seed=1000 * round_ + client,
            )
            update = encode_update(result.delta, {"round": str(round_), "client": str(client)})
            delta, _ = decode_tensors(update, expected=expected, max_bytes=MAX_BYTES)
            deltas.append(delta)
            weights.append(result.samples)
        new_state = apply_delta(global_state, fedavg(deltas, weights))
        global_state, _ = decode_tensors(encode_model(new_state, {}), expected=expected, max_bytes=MAX_BYTES)
        accuracies.append(evaluate(model, global_state, test).accuracy)

    # Assert
    assert accuracies[-1] >= 0.90, accuracies
    assert accuracies[-1] > accuracies[0]
    assert sum(len(c) for c in clients) == len(train) and np.ptp([len(c) for c in clients]) <= 1
