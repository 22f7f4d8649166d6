"""``alexnet_svm``: AlexNet-SPP features + SSA-tuned RBF SVM OK/NG screen on KolektorSDD.

Modules: :mod:`.ssa` (Sparrow Search Algorithm), :mod:`.features` (data, training of the
feature network, feature extraction), :mod:`.tune` (SVM search by SSA and grid on CV folds),
:mod:`.compose` (one ONNX graph: network + scaler + SVM + logits), :mod:`.train_screen`
(the training command), :mod:`.evaluate_screen` (ONNX-only scoring for ``lineinspect
evaluate``) and :mod:`.localize` (defect boxes from masks and their scores). Paper: Cai,
"Defect recognition and localisation model based on improved Alexnet-SVM and Fast RCNN".
"""
